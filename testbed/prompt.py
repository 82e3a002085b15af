#!/usr/bin/env python3
"""Write a prompt of about N tokens for the qwen2 tokenizer (Qwen3 vocab).

usage: prompt.py N OUT_FILE [SEED]
Every word is drawn from common English words that are each ONE token in qwen2's BPE with a
leading space ("Ġthe" … checked against models/ggml-vocab-qwen2.gguf), so N words = N prompt
tokens (+ BOS where the model adds one). The real count is read back from llama.cpp's log.
"""
import random
import sys

WORDS = """the of and to in is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so no will more can
other into its time only also new two some out about these may then first any like my now over such
our man me even most made after many back years used state through much where your way well down
should because each just those people how too little very make world still see own men work long
here get both between life being under never day same another know while last might us great old
year off come since against go came right take three himself few house use during without again
place around however home small found thought went say part once high general upon school every
does got united left number course war until always away something fact though water less public
put think almost hand enough far took head yet government system better set told nothing night end
why called eyes find going look asked later knew point next program city business give group toward
young days let room president side social given present several order national possible rather
second face per among form important often things looked early white case john become large big
need four within felt along children saw best church ever least power development light thing
seemed family interest want members mind country area others done turned""".split()


def main() -> None:
    n = int(sys.argv[1])
    out = sys.argv[2]
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    words = [rng.choice(WORDS) for _ in range(n)]
    with open(out, "w") as fh:
        # the first word carries no leading space: drop one word to keep the count at ~N
        fh.write(" ".join(words[1:]))


if __name__ == "__main__":
    main()
