#!/usr/bin/env bash
# Installs the Debian packages Rhizome's tests need when they are missing:
# PostgreSQL (the production database, started by the tests), Chromium (end-to-end console tests),
# poppler-utils (the decision report's PDF rendered to PNG and text in the tests),
# Java and Maven (the local Kafka broker, its jars fetched by Maven).
# Idempotent; quick when everything is there.
set -euo pipefail

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The decision report's PDF rendered to PNG in the tests (pdftoppm, pdftotext).
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
# Unicode fonts for the PDF decision report.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
