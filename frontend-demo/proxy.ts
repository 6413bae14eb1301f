// With the bridge's auth on (DEMO_JWT_SECRET set, see lib/session.ts): pages need a signed-in
// user (else /login), and every /api/* request carries the session's JWT to the bridge as
// `Authorization: Bearer` (the browser never sees the token: the cookie is httpOnly).
// The WebSocket transports go around this proxy (an upgrade is not a request it sees): with
// auth on, the demo's chats use the default transport, SSE over HTTP.
import { NextResponse, type NextRequest } from 'next/server';
import { SESSION_COOKIE, sessionSecret, sessionUser } from './lib/session';

export function proxy(request: NextRequest) {
  const secret = sessionSecret();
  if (!secret) return NextResponse.next();
  const token = request.cookies.get(SESSION_COOKIE)?.value;
  const user = sessionUser(token, secret);
  const { pathname } = request.nextUrl;
  if (pathname.startsWith('/api/')) {
    if (!user || !token) {
      return NextResponse.json({ error: { code: 'unauthorized', message: 'sign in first' } }, { status: 401 });
    }
    const headers = new Headers(request.headers);
    headers.set('authorization', `Bearer ${token}`);
    return NextResponse.next({ request: { headers } });
  }
  if (!user && pathname !== '/login') {
    const login = new URL('/login', request.url);
    login.searchParams.set('next', pathname);
    return NextResponse.redirect(login);
  }
  return NextResponse.next();
}

export const config = {
  // Everything but Next.js's own assets.
  matcher: ['/((?!_next/|favicon.ico).*)'],
};
