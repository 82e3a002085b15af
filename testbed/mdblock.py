"""Replace the generated part of a markdown file: the text between a begin and an end marker
(appended with its markers when missing), so that hand-written text around it is kept."""


def write_block(path, begin, end, body):
    doc = open(path).read()
    block = f"{begin}\n{body}{end}"
    if begin in doc and end in doc:
        i, j = doc.index(begin), doc.index(end) + len(end)
        doc = doc[:i] + block + doc[j:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    open(path, "w").write(doc)
