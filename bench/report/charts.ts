import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { PEER_IDS, PEERS, type PeerId } from '../peers/peer.js';

/**
 * The report's charts, drawn headless: a vega-lite spec compiled to vega, rendered to SVG with no
 * browser and no canvas (renderer 'none' only lays the scene out; toSVG writes it).
 */
export async function renderSvg(spec: TopLevelSpec, title: string): Promise<string> {
  // ARIA off: vega puts roles meant for interactive elements on plain <g> groups, which accessibility
  // linters (biome's, on this repository) reject; the <title> and the chart's text say what it shows.
  const view = new View(parse(compile({ ...spec, config: { ...spec.config, aria: false } }).spec), {
    renderer: 'none',
  });
  try {
    const svg = (await view.toSVG())
      // Group containers keep a role even with ARIA off; they are not interactive, so drop it.
      .replace(/ role="graphics-(?:object|symbol|document)"| aria-roledescription="[^"]*"/g, '');
    // A <title> is the SVG's alternative text (and what a browser shows on hover).
    return svg.replace(/^<svg[^>]*>/, (open) => `${open}<title>${escapeXml(title)}</title>`);
  } finally {
    view.finalize();
  }
}

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

const WIDTH = 560;
const HEIGHT = 320;

/** One colour per library, the same in every chart whichever libraries it shows. */
const COLORS: Record<PeerId, string> = {
  'redis-once': '#d62728',
  ideal: '#1f77b4',
  redlock: '#ff7f0e',
  'redlock-tuned': '#bcbd22',
  semaphore: '#2ca02c',
};

function colorOf(libraries: string[]) {
  const byLabel = new Map(PEER_IDS.map((id) => [PEERS[id].label, COLORS[id]]));
  return {
    field: 'library',
    type: 'nominal' as const,
    title: null,
    scale: { domain: libraries, range: libraries.map((label) => byLabel.get(label) ?? '#7f7f7f') },
    legend: { orient: 'bottom' as const, columns: 3, labelLimit: 0 },
  };
}

/**
 * Release-latency CDF, one line per library, log-scaled: redis-once and the ideal bound sit within
 * milliseconds, polling peers spread over seconds, and a linear axis would flatten the former.
 */
export function latencyCdfSpec(
  title: string,
  series: Array<{ library: string; points: Array<{ x: number; p: number }> }>,
): TopLevelSpec {
  const values = series.flatMap(({ library, points }) =>
    // Log scales cannot show 0; a caller released within 10 µs is drawn at 10 µs.
    points.map(({ x, p }) => ({ library, ms: Math.max(x, 0.01), p })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: WIDTH,
    height: HEIGHT,
    background: 'white',
    data: { values },
    mark: { type: 'line', interpolate: 'step-after', strokeWidth: 2 },
    encoding: {
      x: {
        field: 'ms',
        type: 'quantitative',
        scale: { type: 'log' },
        title: 'release latency: caller resolved − fn finished (ms, log scale)',
      },
      y: {
        field: 'p',
        type: 'quantitative',
        title: 'fraction of callers released',
        scale: { domain: [0, 1] },
      },
      color: colorOf(series.map((s) => s.library)),
    },
  };
}

/** Redis commands per run against fn duration: median points joined by lines, min–max as error bars. */
export function commandsVsDurationSpec(
  title: string,
  rows: Array<{ library: string; fnMs: number; median: number; min: number; max: number }>,
): TopLevelSpec {
  const x = {
    field: 'fnMs',
    type: 'quantitative' as const,
    scale: { type: 'log' as const, padding: 12 },
    axis: { values: [...new Set(rows.map((row) => row.fnMs))] },
    title: 'fn duration (ms, log scale)',
  };
  const y = {
    type: 'quantitative' as const,
    scale: { type: 'log' as const },
    title: 'Redis commands per run (log scale)',
  };
  const color = colorOf([...new Set(rows.map((row) => row.library))]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: WIDTH,
    height: HEIGHT,
    background: 'white',
    data: { values: rows },
    layer: [
      { mark: { type: 'line', point: true }, encoding: { x, y: { ...y, field: 'median' }, color } },
      { mark: 'rule', encoding: { x, y: { ...y, field: 'min' }, y2: { field: 'max' }, color } },
    ],
  };
}
