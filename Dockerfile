# kometa-preview on top of the official Kometa image: real, unmodified Kometa at /kometa.py (its
# image's layout) and this tool installed beside it. Jobs are written under /jobs.
#
#   docker build -t kometa-preview .
#   docker run --rm -v "$PWD:/jobs" kometa-preview render /jobs/preview.yml
FROM kometateam/kometa:v2.4.4

WORKDIR /opt/kometa-preview
COPY pyproject.toml setup.cfg README.md ./
COPY kometa_preview ./kometa_preview
COPY addons ./addons
RUN pip3 install --no-cache-dir . \
 && kometa-preview --version

# The official image keeps Kometa at /kometa.py; kometa-preview removes every KOMETA_* variable
# from Kometa's own environment, so this one only tells kometa-preview where Kometa is.
ENV KOMETA_PATH=/kometa.py
WORKDIR /jobs
VOLUME /jobs
ENTRYPOINT ["/tini", "-s", "--", "kometa-preview"]
CMD ["--help"]
