// Runs once when the Next.js server starts.
export function register() {
  const built = process.env.BRIDGE_URL_BUILT;
  const runtime = process.env.BRIDGE_URL?.replace(/\/+$/, '');
  if (runtime && built && runtime !== built) {
    console.warn(
      `[aisdk-bridge demo] BRIDGE_URL=${runtime} differs from the one this build was made with ` +
        `(${built}); /api/* still goes to ${built}. Rebuild (next build) to change it.`,
    );
  }
}
