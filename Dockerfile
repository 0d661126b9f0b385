# The clocksync image for compose.yaml: one image, the role chosen by the command.  The base
# image can be overridden (build argument PYTHON_IMAGE) where python:3.11-slim cannot be
# pulled.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
WORKDIR /app
COPY pyproject.toml README.md ./
COPY clocksync ./clocksync
COPY master ./master
COPY nodes ./nodes
RUN python -m pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["clocksync"]
