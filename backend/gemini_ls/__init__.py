"""gemini-ls: a Label Studio ML backend powered by Google Gemini's image understanding."""

__version__ = "0.1.0"
