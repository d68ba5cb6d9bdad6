"""Running one candidate: the NVFlare job subprocess, its timeouts and its score."""
