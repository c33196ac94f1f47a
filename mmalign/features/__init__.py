"""Feature extractors: audio (librosa), video (OpenCV), text (subtitles)."""
