# The stategate image: `stategate node` by default, `stategate services` too.
FROM python:3.11-slim
WORKDIR /srv/stategate
COPY pyproject.toml README.md ./
COPY app ./app
COPY streams ./streams
COPY views ./views
COPY stategate ./stategate
COPY kafka ./kafka
RUN pip install --no-cache-dir .
ENV STATEGATE_HOST=0.0.0.0 \
    STATEGATE_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["stategate"]
CMD ["node"]
