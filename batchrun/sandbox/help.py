"""The sandbox's help: its reserved inputs and control endpoints.

`batchrun --help` shows it: importing this module imports nothing else (the package's
`__init__` loads starlette and uvicorn only when a sandbox is asked for).
"""

RESERVED_INPUTS_HELP = """\
reserved inputs (put them in a job's input to steer one prediction):
  sandbox_status    failed | canceled | aborted | succeeded: end with this status
  sandbox_error     the error text of a failed (or aborted) prediction
  sandbox_latency   seconds this prediction takes
  sandbox_output    text | tokens | dict | number | images | none: the output's shape

control endpoints (no token): GET /_sandbox/stats, GET|POST /_sandbox/config,
  POST /_sandbox/models/OWNER/NAME/bump, POST /_sandbox/reset
"""
