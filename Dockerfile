FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY campaigns ./campaigns
COPY workers ./workers
COPY schedules ./schedules
RUN pip install --no-cache-dir .
EXPOSE 8000 5555
CMD ["blast", "web", "--host", "0.0.0.0"]
