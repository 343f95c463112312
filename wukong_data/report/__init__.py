"""`wukong stats`: a curator's report of a build, in bounded memory at any row count
(wukong_data/stats.py assembles the report and prints it).

    funnel.py    each stage's rows in, kept and rejected per reason, from the manifest alone

    rows.py      one row per crawled row, each finished stage's reason and columns joined per
                 batch of shards, and its fate (kept, or the first stage/reason that rejected it)
    metrics.py   the numeric columns the stages write, counted on a fixed grid per batch
                 (quantiles exact to the grid's step, memory bounded by the grid)
    collect.py   languages, distributions, duplicate groups, top words and samples per fate
                 (hash-chosen: the same rows every run), batches mapped over worker processes
    images.py    the URLs, errors and thumbnails of sampled rows, read from their row groups only
    svg.py, html.py   the report as one self-contained HTML page
    compare.py   two builds of the same input side by side
"""
