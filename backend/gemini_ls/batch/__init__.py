"""Pre-labelling a whole Label Studio project through the Gemini Batch API (half price).

store.py    job state (Redis per project+version)   job.py      the resumable job
cli.py      `gemini-ls prelabel --batch`, `gemini-ls jobs`
metrics.py  every Batch API job's numbers, from Redis (token prices: gemini/pricing.py)

Label Studio (project config, tasks, predictions written) is labelstudio/project.py's.
"""
