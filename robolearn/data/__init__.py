"""Recorded episodes: the crash-safe store, loaders for training, converters from other formats."""
