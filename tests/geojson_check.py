"""Checks a contour GeoJSON file independently of flowinfer: shapely (GEOS) validity of every
geometry, ring closure and orientation (RFC 7946: exterior counter-clockwise, holes clockwise,
in the coordinates as written), and where QuPath's keys are. Prints one JSON object."""
import json
import sys

from shapely.geometry import shape
from shapely.validation import explain_validity


def signed_area(ring):
    return sum(ring[i][0] * ring[i + 1][1] - ring[i + 1][0] * ring[i][1] for i in range(len(ring) - 1)) / 2


def main(path):
    doc = json.load(open(path))
    out = {"type": doc.get("type"), "features": 0, "invalid": [], "rings": 0, "unclosed": 0, "outer_not_ccw": 0,
           "hole_not_cw": 0, "object_type_outside": 0, "object_types": [], "classes": [], "polygons": 0,
           "vertices": 0}
    for f in doc["features"]:
        out["features"] += 1
        props = f.get("properties", {})
        out["object_types"].append(props.get("objectType"))
        out["classes"].append(props.get("classification", {}).get("name"))
        if "objectType" in f or "object_type" in props:
            out["object_type_outside"] += 1
        g = f["geometry"]
        geom = shape(g)
        if not geom.is_valid:
            out["invalid"].append(explain_validity(geom))
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        out["polygons"] += len(polys)
        for poly in polys:
            for k, ring in enumerate(poly):
                out["rings"] += 1
                out["vertices"] += len(ring)
                if len(ring) < 4 or ring[0] != ring[-1]:
                    out["unclosed"] += 1
                a = signed_area(ring)
                if k == 0 and not a > 0:
                    out["outer_not_ccw"] += 1
                if k > 0 and not a < 0:
                    out["hole_not_cw"] += 1
    out["invalid"] = out["invalid"][:5]
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
