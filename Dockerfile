# kometa-preview on top of the official Kometa image: real, unmodified Kometa at /kometa.py (its image's layout)
# and this tool installed beside it. Jobs are written under /jobs.
#
#   docker build -t kometa-preview .                                  # Kometa v2.4.4
#   docker build --build-arg KOMETA_TAG=nightly -t kometa-preview .   # any tag of kometateam/kometa
#   docker run --rm -v "$PWD:/jobs" -e PLEX_TOKEN --security-opt seccomp=unconfined \
#       --security-opt apparmor=unconfined --security-opt systempaths=unconfined kometa-preview render /jobs/preview.yml
# (the three options let Kometa run in its box inside the container: README, "Why it is safe").
ARG KOMETA_TAG=v2.4.4
FROM kometateam/kometa:${KOMETA_TAG}

WORKDIR /opt/kometa-preview
COPY pyproject.toml setup.cfg README.md ./
COPY kometa_preview ./kometa_preview
COPY addons ./addons
RUN pip3 install --no-cache-dir . \
 && kometa-preview --version

# The official image keeps Kometa at /kometa.py, with its requirements in the image's own python3 — the one this
# tool is installed in, named here so no render has to prove it first. kometa-preview removes every KOMETA_*
# variable from Kometa's own environment, so these only tell kometa-preview where Kometa is and what runs it.
ENV KOMETA_PATH=/kometa.py \
    KOMETA_PYTHON=python3
WORKDIR /jobs
VOLUME /jobs
ENTRYPOINT ["/tini", "-s", "--", "kometa-preview"]
CMD ["--help"]
