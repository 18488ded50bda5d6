"""Benchmarks for tuspipe: a fast local tus discard sink and client-against-client timings."""
