"""Aligners: every one of them produces a TimeMap (see mmalign.timeline)."""
