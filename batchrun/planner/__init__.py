"""Spec to plan: every prediction with its key and file names, shards, samples, the lock."""
