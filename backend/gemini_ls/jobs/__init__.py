"""Jobs: whole-project pre-labelling on RQ, write-back through Label Studio's API, exactly-once claims,
the one-click finisher of /predict, and the Gemini quota shared by every process."""
