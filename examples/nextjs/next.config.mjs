// next.config.mjs
// BRIDGE_URL is read when the app is BUILT (`next build` writes the rewrites into its routes
// manifest): set it then, e.g. `BRIDGE_URL=https://bridge.internal:8000 npm run build`.
const bridge = process.env.BRIDGE_URL ?? 'http://127.0.0.1:8000';

export default {
  compress: false, // keep streamed responses unbuffered (the bridge also sends no-transform)
  env: { BRIDGE_URL: bridge }, // the same bridge for the server components (history)
  async rewrites() {
    return [{ source: '/api/:path*', destination: `${bridge}/api/:path*` }];
  },
};
