"""What the tests share to run real parts: free ports, bounded waits, bridge processes,
redis-server (single and cluster) launchers, and fault-injecting proxies. One helper per job:
a test module imports from here rather than writing its own."""
