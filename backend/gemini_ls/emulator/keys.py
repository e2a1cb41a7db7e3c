"""The API key the emulator accepts unless told another: a leaf, so the package's face can name it
without importing the server (which imports the rest of the emulator)."""

DEFAULT_API_KEY = "emulator-key"
