"""Print the SEO-relevant metadata of an HTML page as JSON."""

import json
import sys
from html.parser import HTMLParser


class MetaParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.report = {"title": "", "description": None, "canonical": None, "h1": 0, "images_without_alt": 0}
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "title":
            self._in_title = True
        elif tag == "meta" and attrs.get("name") == "description":
            self.report["description"] = attrs.get("content")
        elif tag == "link" and attrs.get("rel") == "canonical":
            self.report["canonical"] = attrs.get("href")
        elif tag == "h1":
            self.report["h1"] += 1
        elif tag == "img" and not attrs.get("alt"):
            self.report["images_without_alt"] += 1

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.report["title"] += data


if __name__ == "__main__":
    parser = MetaParser()
    parser.feed(sys.stdin.read())
    print(json.dumps(parser.report, indent=2))
