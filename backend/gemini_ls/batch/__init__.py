"""Pre-labelling a whole Label Studio project through the Gemini Batch API (half price).

pricing.py  token prices, sync and batch      store.py        job state (Redis per project+version)
job.py      the resumable job                 cli.py          `gemini-ls prelabel --batch`, `gemini-ls jobs`

Label Studio (project config, tasks, predictions written) is labelstudio/project.py's.
"""
