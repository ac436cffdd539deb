FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    BLAST_HOME=/var/lib/blast
WORKDIR /app
COPY pyproject.toml README.md ./
COPY campaigns ./campaigns
COPY workers ./workers
COPY schedules ./schedules
RUN pip install --no-cache-dir . \
    && useradd --system --home-dir /var/lib/blast --create-home blast
USER blast
# web app, Flower, gateway sandbox
EXPOSE 8000 5555 8900
CMD ["blast", "web", "--host", "0.0.0.0"]
