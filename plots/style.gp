# plots/style.gp: run first for every figure (lib.sh's draw). The terminal from fmt ("png",
# "svg" or "pdf"), width and height (pixels; a PDF page is width/72 x height/72 inches, so a
# pixel is a point and fonts keep their size against the frame), font ("Name,size") and out.
# Then the series styles: series i has colour scol(i), dash pattern sdt(i), point type spt(i)
# and point size sps(i), from lists of coprime lengths (7 colours, 5 dashes, 9 points), so
# every pair of the first 35 series differs in dash or point shape as well as colour, and a
# reader of a black-and-white print tells them apart. Colours are Okabe and Ito's palette
# (legible to colour-blind readers); points are open shapes of several sizes, so two series
# that coincide show both markers.
if (!exists("fmt")) fmt = "png"
if (!exists("width")) width = 900
if (!exists("height")) height = 560
if (!exists("font")) font = "Helvetica,11"
if (fmt eq "svg") {
    set terminal svg size width, height dynamic noenhanced font font background rgb "white"
} else {
    if (fmt eq "pdf") {
        # a pixel is a point; pdfcairo draws text at half its size unless told (fontscale 1:
        # as the PNG, measured by rendering both; lines likewise thinner unless scaled)
        set terminal pdfcairo size (width / 72.0), (height / 72.0) noenhanced font font fontscale 1.0 linewidth 1.6 pointscale 1.0
    } else {
        set terminal pngcairo size width, height noenhanced font font background rgb "white"
    }
}
set output out
set termoption noenhanced
set encoding utf8

array SCOL[7] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
array SDT[5] = ["", "- ", ". ", "-.", "__ "]
array SPT[9] = [6, 2, 4, 1, 8, 12, 3, 10, 14]
array SPS[9] = [1.7, 1.3, 1.4, 1.6, 1.5, 1.6, 1.4, 1.5, 1.5]
scol(i) = SCOL[(i - 1) % 7 + 1]
sdt(i) = SDT[(i - 1) % 5 + 1]
spt(i) = SPT[(i - 1) % 9 + 1]
sps(i) = SPS[(i - 1) % 9 + 1]
# the titles of series i, set by the shell as t1, t2 ... (quoted data, lib.sh's gp_str)
tl(i) = value(sprintf("t%d", i))

set border lw 1.0
set grid lc rgb "#e0e0e0" lw 1
set key noautotitle spacing 1.15
if (!exists("title")) title = ""
set title title
# bars: series i is filled with pattern spat(i) (3 is solid) in scol(i), outlined in black
array SPAT[7] = [3, 4, 5, 1, 6, 7, 2]
spat(i) = SPAT[(i - 1) % 7 + 1]
