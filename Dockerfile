# The clocksync image for compose.yaml: one image, the role chosen by the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY clocksync ./clocksync
COPY master ./master
COPY nodes ./nodes
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["clocksync"]
