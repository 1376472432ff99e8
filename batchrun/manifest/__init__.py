"""A run folder's record: the journal on disk, read and written, and where each key stands."""
