"""The sandbox's help: its reserved inputs and control endpoints.

Its own module, outside `batchrun.sandbox`, so that `batchrun --help` can show it without
importing starlette and uvicorn.
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
