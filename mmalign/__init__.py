"""mmalign: multimodal data alignment and preprocessing.

Re-time subtitles to speech (``mmalign sync``), extract timestamped features, align
sequences and export fused tensors.  See the README for the command-line tool.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
