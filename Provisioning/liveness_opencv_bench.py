#!/usr/bin/python3
"""OpenCV peer for `kiosk-bench liveness`: detectMultiScale on the same frame, cascade and parameters.

Run with Debian's /usr/bin/python3 (python3-opencv 4.6 still has cv2.CascadeClassifier). One thread
(cv2.setNumThreads(1)) so the figures compare one core with one core. Prints JSON: median ms per
frame for the full frame and for the tracked region of interest, and the faces found.
"""
import argparse, json, time
import cv2

ap = argparse.ArgumentParser()
ap.add_argument("--frame", required=True)
ap.add_argument("--cascade", required=True)
ap.add_argument("--scale-factor", type=float, default=1.1)
ap.add_argument("--min-neighbors", type=int, default=3)
ap.add_argument("--min-size", type=int, default=60)
ap.add_argument("--roi", default=None, help="x,y,w,h")
ap.add_argument("--roi-min-size", type=int, default=0)
ap.add_argument("--roi-max-size", type=int, default=0)
ap.add_argument("--repeat", type=int, default=15)
a = ap.parse_args()
cv2.setNumThreads(1)
img = cv2.imread(a.frame, cv2.IMREAD_GRAYSCALE)
clf = cv2.CascadeClassifier(a.cascade)
if img is None or clf.empty():
    raise SystemExit("cannot load frame or cascade")

def median_ms(fn):
    fn()
    t = []
    for _ in range(a.repeat):
        s = time.perf_counter(); fn(); t.append((time.perf_counter() - s) * 1000)
    return sorted(t)[len(t) // 2]

faces = []
def full():
    global faces
    faces = clf.detectMultiScale(img, scaleFactor=a.scale_factor, minNeighbors=a.min_neighbors, minSize=(a.min_size, a.min_size))
out = {"opencv": cv2.__version__, "full_ms": median_ms(full)}
out["faces"] = [[int(v) for v in f] for f in faces]
if a.roi:
    x, y, w, h = (int(v) for v in a.roi.split(","))
    sub = img[y:y + h, x:x + w]
    mx = (a.roi_max_size, a.roi_max_size) if a.roi_max_size else ()
    roi_faces = []
    def roi():
        global roi_faces
        # The crop is part of the work (our ROI search crops too).
        roi_faces = clf.detectMultiScale(img[y:y + h, x:x + w].copy(), scaleFactor=a.scale_factor, minNeighbors=a.min_neighbors,
                                         minSize=(a.roi_min_size, a.roi_min_size), maxSize=mx)
    out["roi_ms"] = median_ms(roi)
    out["roi_faces"] = [[int(v) + (x if i == 0 else y if i == 1 else 0) for i, v in enumerate(f)] for f in roi_faces]
print(json.dumps(out))
