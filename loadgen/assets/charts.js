// imbench's charts: reads the JSON the report wrote into #imbench-charts and draws each chart
// with uPlot into its placeholder (#chart-N). Hover shows values in the legend, a click on a
// legend entry hides or shows its line, dragging across a chart zooms in (double-click zooms
// out). Charts follow the page's width.
(function () {
  "use strict";
  var source = document.getElementById("imbench-charts");
  if (!source || typeof uPlot === "undefined") {
    return;
  }
  var spec = JSON.parse(source.textContent);
  var PHASE_FILL = ["rgba(0,0,0,0.07)", "rgba(0,0,0,0.035)", "rgba(0,0,0,0)", "rgba(0,0,0,0.05)"];
  var HEIGHT = 260;

  function percentLabel(v) {
    if (v == null) {
      return "";
    }
    var p = (1 - 1 / v) * 100;
    return p < 1 ? "0%" : +p.toPrecision(6) + "%";
  }

  function number(v) {
    if (v == null) {
      return "-";
    }
    return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en") : String(+v.toPrecision(3));
  }

  // Shades the run's phases behind the lines and names them along the top.
  function shadePhases(u) {
    var ctx = u.ctx;
    var top = u.bbox.top;
    var height = u.bbox.height;
    spec.phases.forEach(function (p, i) {
      var x0 = u.valToPos(p.from_s, "x", true);
      var x1 = u.valToPos(p.to_s, "x", true);
      var left = Math.max(x0, u.bbox.left);
      var right = Math.min(x1, u.bbox.left + u.bbox.width);
      if (right <= left) {
        return;
      }
      ctx.save();
      ctx.fillStyle = PHASE_FILL[i % PHASE_FILL.length];
      ctx.fillRect(left, top, right - left, height);
      ctx.fillStyle = "#666";
      ctx.font = Math.round(10 * devicePixelRatio) + "px sans-serif";
      ctx.textBaseline = "top";
      if (ctx.measureText(p.name).width < right - left - 4) {
        ctx.fillText(p.name, left + 3 * devicePixelRatio, top + 2 * devicePixelRatio);
      }
      ctx.restore();
    });
  }

  function markX(chart) {
    return function (u) {
      var x = u.valToPos(chart.mark_x, "x", true);
      var ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = "rgba(0,0,0,0.45)";
      ctx.lineWidth = devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.restore();
    };
  }

  // SLO thresholds: dashed black lines across the whole plot.
  function thresholds(chart) {
    return function (u) {
      var ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2 * devicePixelRatio;
      ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
      chart.thresholds.forEach(function (t) {
        var y = u.valToPos(t, "y", true);
        ctx.beginPath();
        ctx.moveTo(u.bbox.left, y);
        ctx.lineTo(u.bbox.left + u.bbox.width, y);
        ctx.stroke();
      });
      ctx.restore();
    };
  }

  // The legend shows values under the cursor only: before hovering, nothing.
  function legendValue(format) {
    return function (u, v, seriesIdx, dataIdx) {
      return dataIdx == null ? "" : format(v);
    };
  }

  // A value with the chart's unit, for the legend.
  function withUnit(chart) {
    var unit = { ms: " ms", "per second": "/s" }[chart.y_label] || "";
    return function (v) {
      return v == null ? "-" : number(v) + unit;
    };
  }

  function series(line, chart) {
    var s = {
      label: line.label,
      stroke: line.colour,
      width: 2,
      spanGaps: false,
      value: legendValue(withUnit(chart))
    };
    if (line.style === "dashed") {
      // The legend's marker is solid whatever the line: the label says it.
      s.label += " (dashed)";
      s.dash = [6, 4];
      // No markers: uPlot's default on sparse data is a ring, which would read as a failed step.
      s.points = { show: false };
    } else if (line.style === "dots") {
      s.points = { show: true, size: 7, fill: line.colour, stroke: line.colour };
    } else if (line.style === "rings") {
      s.width = 0;
      s.paths = function () {
        return null;
      };
      s.points = { show: true, size: 13, width: 2, fill: "#fff", stroke: line.colour };
    }
    return s;
  }

  function options(chart, width) {
    var x = { time: false };
    var xAxis = { label: chart.x_label };
    if (chart.x_kind === "percentile") {
      x.distr = 3;
      x.log = 10;
      // To the last point, not on to the next power of ten: a line ends where its samples do.
      x.range = function (u, min, max) {
        return [min, max];
      };
      // A tick at each power of ten only: 0 %, 90 %, 99 %, 99.9 % …
      xAxis.splits = function (u, axisIdx, min, max) {
        var out = [];
        for (var v = 1; v <= max * 1.0001; v *= 10) {
          out.push(v);
        }
        return out;
      };
      xAxis.values = function (u, splits) {
        return splits.map(percentLabel);
      };
    } else {
      xAxis.values = function (u, splits) {
        return splits.map(number);
      };
    }
    var hooks = {};
    if (chart.x_kind === "seconds") {
      hooks.drawClear = [shadePhases];
    }
    hooks.draw = [];
    if (chart.mark_x != null) {
      hooks.draw.push(markX(chart));
    }
    var lines = chart.thresholds || [];
    if (lines.length > 0) {
      hooks.draw.push(thresholds(chart));
    }
    var top = Math.max.apply(null, [0].concat(lines));
    return {
      width: width,
      height: HEIGHT,
      scales: {
        x: x,
        y: {
          range: function (u, min, max) {
            var high = Math.max(max || 0, top);
            return [0, high > 0 ? high * 1.08 : 1];
          }
        }
      },
      axes: [
        xAxis,
        {
          label: chart.y_label,
          size: 60,
          values: function (u, splits) {
            return splits.map(number);
          }
        }
      ],
      series: [{ label: chart.x_label, value: legendValue(chart.x_kind === "percentile" ? percentLabel : number) }]
        .concat(
          chart.lines.map(function (l) {
            return series(l, chart);
          })
        ),
      // Room on the right for the last tick's label, centred on the plot's edge.
      padding: [12, 36, 0, 0],
      cursor: { drag: { x: true, y: false } },
      hooks: hooks
    };
  }

  var drawn = [];
  spec.charts.forEach(function (chart, i) {
    var el = document.getElementById("chart-" + i);
    if (!el) {
      return;
    }
    // A null is a gap in a line; undefined (a point this series does not have, but another
    // does) is passed over, so the line runs on.
    var data = [chart.x].concat(
      chart.lines.map(function (l) {
        var values = l.values.slice();
        (l.absent || []).forEach(function (i) {
          values[i] = undefined;
        });
        return values;
      })
    );
    var plot = new uPlot(options(chart, el.clientWidth || 600), data, el);
    el.setAttribute("data-width", String(plot.width));
    drawn.push({ plot: plot, el: el });
  });
  document.body.setAttribute("data-charts-drawn", String(drawn.length));

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      drawn.forEach(function (d) {
        d.plot.setSize({ width: d.el.clientWidth, height: HEIGHT });
        d.el.setAttribute("data-width", String(d.plot.width));
      });
    }, 100);
  });
})();
