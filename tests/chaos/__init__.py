"""The chaos suite (`make chaos`): bridge processes and a redis-server killed, paused, cut
off and restarted for real, each scenario checking the stored answer and every reader."""
