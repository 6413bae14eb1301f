import type { NextConfig } from 'next';

// Where the bridge (the FastAPI service) listens. The browser only ever talks to this
// Next.js server: `/api/*` is proxied to the bridge, so the demo is a single origin.
//
// Next.js evaluates `rewrites()` when it builds (`next build` writes them into the routes
// manifest), so BRIDGE_URL is a build-time setting: rebuild to point at another bridge.
// The server components use the same value (BRIDGE_URL_BUILT) so both paths agree.
const BRIDGE_URL = (process.env.BRIDGE_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '');

const nextConfig: NextConfig = {
  // A compressed response is buffered by the proxy until the stream ends, which would turn
  // the token stream into one late blob. The bridge also sends `Cache-Control: no-transform`;
  // this keeps SSE unbuffered even behind a bridge that does not.
  compress: false,
  poweredByHeader: false,
  reactStrictMode: true,
  // The browser tests build into their own directory so they never clobber a dev build.
  distDir: process.env.NEXT_DIST_DIR || '.next',
  env: { BRIDGE_URL_BUILT: BRIDGE_URL },
  async rewrites() {
    return [{ source: '/api/:path*', destination: `${BRIDGE_URL}/api/:path*` }];
  },
};

export default nextConfig;
