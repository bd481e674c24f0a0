#!/usr/bin/env bash
# Fetches public-domain face photos for the Liveness tests and bench at set-up time (not committed)
# and writes them as 8-bit PGM into .cache/faces/, with OpenCV's own detections as the reference:
#   - astronaut.png (NASA, public domain) and camera.png from the scikit-image wheel (pip download)
#   - grace_hopper_512x512.jpg (US Navy portrait) from Debian's facedetect package, if installed
#   - frame640_astronaut.pgm: the astronaut's face on a 640x480 frame (the bench's frame size)
#   - opencv-boxes.json: cv2.CascadeClassifier.detectMultiScale (Debian python3-opencv 4.6) boxes,
#     haarcascade_frontalface_default.xml, scale 1.1, min neighbours 3, min size 40
# Needs /usr/bin/python3 with cv2 (apt python3-opencv) and opencv-data. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=.cache/faces
PY=/usr/bin/python3
CASCADES=/usr/share/opencv4/haarcascades
[ -f "$OUT/opencv-boxes.json" ] && exit 0
if [ ! -f "$CASCADES/haarcascade_frontalface_default.xml" ] || ! "$PY" -c 'import cv2' 2>/dev/null; then
  echo "fetch-faces: opencv-data / python3-opencv missing (Provisioning/deps.sh installs them); Liveness tests will skip" >&2
  exit 0
fi
mkdir -p "$OUT/dl"
if ! ls "$OUT"/dl/scikit_image-*.whl >/dev/null 2>&1; then
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$OUT/dl" 'scikit-image==0.24.0' \
    || python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$OUT/dl" 'scikit-image==0.24.0'
fi
"$PY" - "$OUT" "$CASCADES" <<'PY'
import cv2, glob, json, os, sys, zipfile
import numpy as np
out, cascades = sys.argv[1], sys.argv[2]
whl = sorted(glob.glob(os.path.join(out, "dl", "scikit_image-*.whl")))[-1]
images = {}
with zipfile.ZipFile(whl) as z:
    for name in ("astronaut", "camera"):
        data = np.frombuffer(z.read(f"skimage/data/{name}.png"), np.uint8)
        images[name] = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
hopper = "/usr/share/doc/facedetect/examples/grace_hopper_512x512.jpg"
if os.path.exists(hopper):
    images["grace_hopper"] = cv2.imread(hopper, cv2.IMREAD_GRAYSCALE)
# The astronaut's head and shoulders on a mid-grey 640x480 frame, face near the centre.
frame = np.full((480, 640), 110, np.uint8)
crop = images["astronaut"][0:300, 60:330]
frame[90:390, 185:455] = crop
images["frame640_astronaut"] = frame
face = cv2.CascadeClassifier(os.path.join(cascades, "haarcascade_frontalface_default.xml"))
eye = cv2.CascadeClassifier(os.path.join(cascades, "haarcascade_eye.xml"))
cv2.setNumThreads(1)
ref = {}
for name, img in images.items():
    cv2.imwrite(os.path.join(out, name + ".pgm"), img)
    faces = face.detectMultiScale(img, scaleFactor=1.1, minNeighbors=3, minSize=(40, 40))
    entry = {"width": int(img.shape[1]), "height": int(img.shape[0]),
             "faces": [[int(v) for v in f] for f in faces], "eyes": []}
    for (x, y, w, h) in faces:
        roi = img[y:y + h // 2 + h // 8, x:x + w]
        for (ex, ey, ew, eh) in eye.detectMultiScale(roi, scaleFactor=1.1, minNeighbors=3, minSize=(max(8, w // 10), max(8, w // 10))):
            entry["eyes"].append([int(x + ex), int(y + ey), int(ew), int(eh)])
    ref[name] = entry
with open(os.path.join(out, "opencv-boxes.json"), "w") as f:
    json.dump({"cascade": "haarcascade_frontalface_default.xml", "scale_factor": 1.1, "min_neighbors": 3,
               "min_size": 40, "opencv": cv2.__version__, "images": ref}, f, indent=1, sort_keys=True)
print("fetch-faces: " + ", ".join(f"{k} {len(v['faces'])} face(s)" for k, v in ref.items()))
PY
