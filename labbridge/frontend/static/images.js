// Images on the dashboard: a two-dimensional array attribute (a camera frame) drawn on a canvas.
// The array is read as a NumPy .npy file (`Accept: application/x-npy`: its raw numbers, no JSON to parse),
// averaged down in blocks to at most MAX_SIDE pixels a side, stretched from its darkest to its brightest
// block, and drawn in grey; "Refresh" reads it again.  app.js calls Images.view when it builds the row
// of an attribute for which Images.isImage is true, and Images.reset when it rebuilds the page.
"use strict";

const Images = (() => {
  const MAX_SIDE = 512;  // canvas pixels on the longer side: a 2048 x 2048 frame is shown in 4 x 4 blocks
  const NPY = "application/x-npy";
  // .npy dtypes (little-endian or single-byte) and the typed arrays that view their numbers.
  const TYPED = {
    "|b1": [Uint8Array, "bool"], "|u1": [Uint8Array, "uint8"], "|i1": [Int8Array, "int8"],
    "<u2": [Uint16Array, "uint16"], "<i2": [Int16Array, "int16"], "<u4": [Uint32Array, "uint32"],
    "<i4": [Int32Array, "int32"], "<f4": [Float32Array, "float32"], "<f8": [Float64Array, "float64"],
    "<u8": [BigUint64Array, "uint64"], "<i8": [BigInt64Array, "int64"],
  };
  const views = {};  // "module/attribute" -> the view's state (also read by the tests)

  function isImage(info) {
    return info.type.startsWith("ndarray[") && Array.isArray(info.shape) && info.shape.length === 2;
  }

  // { dtype, shape, fortran, data } of a .npy file; throws with a message a person can read.
  function parseNpy(buffer) {
    const bytes = new Uint8Array(buffer);
    if (bytes.length < 10 || String.fromCharCode(...bytes.subarray(0, 6)) !== "\x93NUMPY") throw new Error("not a .npy file");
    const view = new DataView(buffer);
    const [length, start] = bytes[6] === 1 ? [view.getUint16(8, true), 10] : [view.getUint32(8, true), 12];
    const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + length));
    const dtype = /'descr':\s*'([^']+)'/.exec(header)?.[1];
    const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? "").split(",").filter((s) => s.trim()).map(Number);
    if (!TYPED[dtype]) throw new Error(`arrays of ${dtype} cannot be shown`);
    const [Typed, kind] = TYPED[dtype];
    const count = shape.reduce((a, b) => a * b, 1);
    // The header is padded so that the numbers start at a multiple of 64 bytes: a typed array can view them.
    return { dtype, kind, shape, fortran: /'fortran_order':\s*True/.test(header), data: new Typed(buffer, start + length, count) };
  }

  // Block means of a rows x cols array, `step` x `step` pixels each (fewer at the right and bottom edges).
  function downscale(data, rows, cols, step) {
    const outRows = Math.ceil(rows / step), outCols = Math.ceil(cols / step);
    const means = new Float64Array(outRows * outCols);
    const big = typeof data[0] === "bigint";
    for (let r = 0; r < outRows; r++) {
      for (let c = 0; c < outCols; c++) {
        let sum = 0, n = 0;
        for (let y = r * step; y < Math.min(rows, (r + 1) * step); y++) {
          const base = y * cols;
          for (let x = c * step; x < Math.min(cols, (c + 1) * step); x++) {
            sum += big ? Number(data[base + x]) : data[base + x];
            n++;
          }
        }
        means[r * outCols + c] = sum / n;
      }
    }
    return { means, outRows, outCols };
  }

  function draw(state, parsed) {
    const [rows, cols] = parsed.shape;
    if (parsed.fortran) throw new Error("Fortran-ordered arrays cannot be shown");
    const step = Math.max(1, Math.ceil(Math.max(rows, cols) / MAX_SIDE));
    const { means, outRows, outCols } = downscale(parsed.data, rows, cols, step);
    let lo = Infinity, hi = -Infinity;
    for (const m of means) { if (m < lo) lo = m; if (m > hi) hi = m; }
    const span = hi > lo ? hi - lo : 1;
    const grey = new Uint8ClampedArray(means.length);
    for (let i = 0; i < means.length; i++) grey[i] = Math.floor(((means[i] - lo) * 255) / span + 0.5);
    const pixels = new ImageData(outCols, outRows);
    for (let i = 0, j = 0; i < grey.length; i++, j += 4) {
      pixels.data[j] = pixels.data[j + 1] = pixels.data[j + 2] = grey[i];
      pixels.data[j + 3] = 255;
    }
    state.canvas.width = outCols;
    state.canvas.height = outRows;
    state.canvas.getContext("2d").putImageData(pixels, 0, 0);
    Object.assign(state, { shape: parsed.shape, dtype: parsed.dtype, step, low: lo, high: hi, grey });
  }

  async function refresh(state) {
    state.status.textContent = "reading…";
    state.button.disabled = true;
    try {
      const response = await fetch(`/${state.module}/${state.name}`, { headers: { ...headers(false), Accept: NPY } });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.message || `HTTP ${response.status}`);
      }
      const parsed = parseNpy(await response.arrayBuffer());
      draw(state, parsed);
      state.loaded += 1;
      const unit = state.unit ? ` ${state.unit}` : "";
      state.status.textContent = `${parsed.shape.join(" × ")} ${parsed.kind}, shown in ${state.step} × ${state.step} `
        + `blocks; block means ${format(state.low)} to ${format(state.high)}${unit}`;
    } catch (failure) {
      state.status.textContent = `cannot read: ${failure.message}`;
    } finally {
      state.button.disabled = false;
    }
  }

  function view(module, name, info) {
    const box = document.createElement("div");
    box.className = "image-view";
    box.id = `image-${module}-${name}`;
    const canvas = document.createElement("canvas");
    canvas.setAttribute("aria-label", `${module}.${name} as an image`);
    const button = document.createElement("button");
    Object.assign(button, { type: "button", textContent: "Refresh" });
    const status = document.createElement("small");
    const state = { module, name, unit: info.unit, canvas, button, status, loaded: 0 };
    button.addEventListener("click", () => refresh(state));
    box.append(canvas, document.createElement("br"), button, " ", status);
    views[`${module}/${name}`] = state;
    refresh(state);
    return box;
  }

  function reset() {  // the page is rebuilt: forget the old views
    for (const key of Object.keys(views)) delete views[key];
  }

  return { isImage, view, views, parseNpy, reset };
})();
