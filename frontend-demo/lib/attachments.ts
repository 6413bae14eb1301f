import type { FileUIPart } from 'ai';

/** What the composer accepts: what the providers take as file parts. */
export const ACCEPTED_FILES = 'image/*,application/pdf';

/**
 * The largest file sent, so that a message stays under the bridge's body limit
 * (BRIDGE_MAX_BODY_BYTES, 4 MB by default; a data URL is a third larger than the file).
 */
export const MAX_FILE_BYTES = 1024 * 1024;

function dataUrl(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error(`could not read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

/** The files as message parts (data URLs: the bridge stores them with the message). */
export async function toFileParts(files: File[]): Promise<FileUIPart[]> {
  return Promise.all(
    files.map(async (file) => ({
      type: 'file' as const,
      mediaType: file.type || 'application/octet-stream',
      filename: file.name,
      url: await dataUrl(file),
    })),
  );
}

export function messageText(parts: Array<{ type: string; text?: string }>): string {
  return parts
    .filter((part) => part.type === 'text')
    .map((part) => part.text ?? '')
    .join('\n');
}
