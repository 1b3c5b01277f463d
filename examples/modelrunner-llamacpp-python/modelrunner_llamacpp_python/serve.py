"""The runner: ``python -m modelrunner_llamacpp_python.serve ADDRESS MODEL_SETTINGS_JSON``.

``python -m llama_cpp.server`` only listens on a host and port, so this runs its app with uvicorn
on the scheduler's Unix socket. The model loads in create_app: the socket appears when it is ready.
"""

import json
import sys
from urllib.parse import urlsplit

import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings


def main(address, model_settings):
    env = "MODELRUNNER_LLAMACPP_PYTHON_"  # settings read only these variables, not MODEL, API_KEY
    app = create_app(server_settings=ServerSettings(_env_prefix=env, interrupt_requests=False),
                     model_settings=[ModelSettings(_env_prefix=env, **json.loads(model_settings))])
    where = urlsplit(address)
    if where.scheme == "unix":
        uvicorn.run(app, uds=where.path)
    else:
        uvicorn.run(app, host=where.hostname, port=where.port)


if __name__ == "__main__":
    main(*sys.argv[1:])
