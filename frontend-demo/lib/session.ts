// Sign-in for the demo with the bridge's auth on (a JWT set-up, end to end).
//
// With DEMO_JWT_SECRET set (the same value as the bridge's BRIDGE_JWT_SECRET), /login asks
// for a name, signs an HS256 JWT with `sub` = that name and keeps it in an httpOnly cookie;
// proxy.ts puts it in `Authorization: Bearer` of every /api/* request on its way to the
// bridge, and the server components send it too. Unset: the bridge's anonymous mode.
//
// A real app signs the user in with its own identity provider and hands the bridge that
// provider's token (BRIDGE_JWT_JWKS_URL); the name-only form is what makes this a demo.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'demo_session';
export const SESSION_SECONDS = 7 * 24 * 3600;

/** The shared secret, read when the server runs (not baked in at build time). */
export function sessionSecret(): string | null {
  return process.env.DEMO_JWT_SECRET || null;
}

const base64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

function mac(input: string, secret: string): string {
  return createHmac('sha256', secret).update(input).digest('base64url');
}

export function signSession(user: string, secret: string, now = Date.now()): string {
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const iat = Math.floor(now / 1000);
  const payload = base64url(JSON.stringify({ sub: user, iat, exp: iat + SESSION_SECONDS }));
  return `${header}.${payload}.${mac(`${header}.${payload}`, secret)}`;
}

/** The signed-in user, or null (no token, a forged or expired one). */
export function sessionUser(token: string | undefined, secret: string): string | null {
  const [header, payload, signature, ...rest] = token?.split('.') ?? [];
  if (!header || !payload || !signature || rest.length > 0) return null;
  const expected = Buffer.from(mac(`${header}.${payload}`, secret));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { sub?: unknown; exp?: unknown };
    const live = typeof claims.exp === 'number' && claims.exp > Date.now() / 1000;
    return live && typeof claims.sub === 'string' ? claims.sub : null;
  } catch {
    return null;
  }
}

/** What a name may be: it becomes the user id the bridge keeps chats under. */
export const USER_NAME_PATTERN = /^[A-Za-z0-9_.@-]{1,64}$/;
