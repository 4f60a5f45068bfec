"""Reproduction experiments (issue: precomputed scores and a reproduction report). One command each, resumable."""
