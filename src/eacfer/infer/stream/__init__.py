"""Frames in order: sources, the threaded/sequential pipeline, label carry-over, tracking, live streams."""
