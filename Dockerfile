FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge bridge
COPY ocpi_mock ocpi_mock
COPY config config
RUN pip install --no-cache-dir .
EXPOSE 8080 9090
CMD ["bridge", "serve"]
