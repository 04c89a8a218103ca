"""The programs that run *inside* the lab hosts (standard library only)."""
