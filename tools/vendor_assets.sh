#!/usr/bin/env bash
# Copies bpmn-js (pinned in package.json / package-lock.json) from npm into webapp/static/vendor/,
# so pages load it from the app itself: no CDN, works on a commune's closed network.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --ignore-scripts --no-audit --no-fund --silent
dest=webapp/static/vendor/bpmn-js
mkdir -p "$dest"
cp node_modules/bpmn-js/dist/bpmn-navigated-viewer.production.min.js "$dest/"
cp node_modules/bpmn-js/dist/bpmn-modeler.production.min.js "$dest/"
cp node_modules/bpmn-js/dist/assets/bpmn-js.css node_modules/bpmn-js/dist/assets/diagram-js.css "$dest/"
mkdir -p "$dest/bpmn-font" && cp -r node_modules/bpmn-js/dist/assets/bpmn-font/css node_modules/bpmn-js/dist/assets/bpmn-font/font "$dest/bpmn-font/"
cp node_modules/bpmn-js/LICENSE "$dest/LICENSE"
echo "bpmn-js $(node -p "require('./node_modules/bpmn-js/package.json').version") copied into $dest"
