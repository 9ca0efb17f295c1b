package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// A Panel is one chart: lines of (x, y) points over a logarithmic x axis
// and a linear y axis from zero.
type Panel struct {
	Title, XLabel, YLabel string
	Lines                 []Line
}

// A Line is one scraper's points, drawn in order of x.
type Line struct {
	Name   string
	Points [][2]float64
}

// palette: distinguishable colours, also in greyscale print.
var palette = [...]string{"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#a6761d"}

// PlotSVG draws panels side by side as one SVG image. It needs no plotting
// library: axes, ticks, lines and a legend are a few dozen SVG elements.
// Lines with the same Name get the same colour in every panel.
func PlotSVG(w io.Writer, panels []Panel) error {
	const (
		pw, ph             = 440.0, 320.0 // one panel
		ml, mr, mt, mb     = 62.0, 16.0, 34.0, 48.0
		legendH            = 28.0
		fontSize, smallFnt = 13, 11
	)
	names := []string{}
	for _, p := range panels {
		for _, l := range p.Lines {
			if !slices.Contains(names, l.Name) {
				names = append(names, l.Name)
			}
		}
	}
	color := func(name string) string { return palette[slices.Index(names, name)%len(palette)] }

	var b strings.Builder
	W, H := pw*float64(len(panels)), ph+legendH
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="%d">`+"\n", W, H, W, H, fontSize)
	fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="white"/>`+"\n", W, H)
	for i, p := range panels {
		x0 := float64(i) * pw
		xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
		for _, l := range p.Lines {
			for _, pt := range l.Points {
				if pt[0] > 0 {
					xmin, xmax = min(xmin, pt[0]), max(xmax, pt[0])
				}
				ymax = max(ymax, pt[1])
			}
		}
		if math.IsInf(xmin, 0) {
			xmin, xmax = 1, 10
		}
		lx0, lx1 := math.Floor(math.Log10(xmin)), math.Ceil(math.Log10(xmax))
		if lx1 == lx0 {
			lx1++
		}
		yTop, yStep := niceScale(ymax)
		left, right, top, bottom := x0+ml, x0+pw-mr, mt, ph-mb
		px := func(x float64) float64 { return left + (math.Log10(x)-lx0)/(lx1-lx0)*(right-left) }
		py := func(y float64) float64 { return bottom - y/yTop*(bottom-top) }

		fmt.Fprintf(&b, `<text x="%g" y="20" text-anchor="middle" font-weight="bold">%s</text>`+"\n", (left+right)/2, html.EscapeString(p.Title))
		// Grid and ticks.
		for y := 0.0; y <= yTop*1.0001; y += yStep {
			fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/>`, left, py(y), right, py(y))
			fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end" font-size="%d">%s</text>`+"\n", left-5, py(y)+4, smallFnt, fmtTick(y))
		}
		for e := lx0; e <= lx1; e++ {
			for _, m := range []float64{1, 2, 5} {
				x := m * math.Pow(10, e)
				if x < math.Pow(10, lx0) || x > math.Pow(10, lx1) {
					continue
				}
				stroke := "#eee"
				if m == 1 {
					stroke = "#ccc"
				}
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="%s"/>`, px(x), top, px(x), bottom, stroke)
				fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle" font-size="%d">%s</text>`+"\n", px(x), bottom+15, smallFnt, fmtTick(x))
			}
		}
		fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#333"/>`+"\n", left, top, right-left, bottom-top)
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", (left+right)/2, bottom+34, html.EscapeString(p.XLabel))
		fmt.Fprintf(&b, `<text transform="translate(%g %g) rotate(-90)" text-anchor="middle">%s</text>`+"\n", x0+16, (top+bottom)/2, html.EscapeString(p.YLabel))
		// Lines and markers.
		for _, l := range p.Lines {
			pts := slices.Clone(l.Points)
			slices.SortFunc(pts, func(a, b [2]float64) int { return cmpFloat(a[0], b[0]) })
			var path strings.Builder
			for _, pt := range pts {
				if pt[0] <= 0 {
					continue
				}
				if path.Len() > 0 {
					path.WriteByte(' ')
				}
				fmt.Fprintf(&path, "%.1f,%.1f", px(pt[0]), py(pt[1]))
			}
			c := color(l.Name)
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", path.String(), c)
			for _, pt := range pts {
				if pt[0] > 0 {
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, px(pt[0]), py(pt[1]), c)
				}
			}
			b.WriteByte('\n')
		}
	}
	// Legend, under the panels.
	x := ml
	for _, n := range names {
		fmt.Fprintf(&b, `<rect x="%g" y="%g" width="14" height="4" fill="%s"/><text x="%g" y="%g">%s</text>`+"\n", x, ph+6, color(n), x+18, ph+11, html.EscapeString(n))
		x += 30 + 7.5*float64(len(n))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceScale returns an axis top ≥ max and a step of 1, 2 or 5 × 10^k that
// divides it into at most 6 parts.
func niceScale(max float64) (top, step float64) {
	if max <= 0 {
		return 1, 0.2
	}
	raw := max / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	return math.Ceil(max/step) * step, step
}

func fmtTick(v float64) string {
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
