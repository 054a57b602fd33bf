// The files-in bar under the editor: "Add file", drops on the editor or the console, removable
// chips. The checks and the frame's shape are pure (files.js); this is the DOM around them.
import { fileInPath, fileInProblem, formatSize, withFile } from "./files.js";

export class FilesIn {
  /**
   * @param {{button: HTMLElement, input: HTMLInputElement, chips: HTMLElement, note: HTMLElement,
   *          dropTargets: Iterable<HTMLElement>}} els
   */
  constructor({ button, input, chips, note, dropTargets }) {
    this.els = { button, input, chips, note };
    this.files = []; // [{path, bytes: Uint8Array}]
    this.locked = false; // a watcher's page: nothing to add or remove
    button.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      this.add(input.files).finally(() => { input.value = ""; });
    });
    for (const target of dropTargets) this._dropOn(target);
    this.render();
  }

  set(files) {
    this.files = files;
    this.render();
  }

  lock() {
    this.locked = true;
    this.els.button.disabled = true;
    this.render();
  }

  setNote(text, tone = "info") {
    this.els.note.textContent = text;
    this.els.note.dataset.tone = tone;
  }

  /** Add browser File objects, refusing (in words) what the server would refuse. */
  async add(list) {
    const problems = [];
    for (const file of Array.from(list || [])) {
      const path = fileInPath(file.name);
      const problem = fileInProblem(path, file.size, this.files);
      if (problem) {
        problems.push(problem);
        continue;
      }
      let bytes;
      try {
        bytes = new Uint8Array(await file.arrayBuffer());
      } catch {
        problems.push(`“${path}” could not be read.`);
        continue;
      }
      this.files = withFile(this.files, { path, bytes });
    }
    this.render();
    this.setNote(problems.join(" "), problems.length ? "error" : "info");
  }

  render() {
    this.els.chips.replaceChildren(...this.files.map((f) => {
      const li = document.createElement("li");
      li.className = "chip file-in";
      li.dataset.path = f.path;
      const name = document.createElement("span");
      name.className = "chip-name";
      name.textContent = f.path;
      const meta = document.createElement("span");
      meta.className = "chip-meta";
      meta.textContent = formatSize(f.bytes.length);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "chip-remove";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${f.path}`);
      remove.title = `Remove ${f.path}`;
      remove.disabled = this.locked;
      remove.addEventListener("click", () => {
        this.set(this.files.filter((x) => x.path !== f.path));
        this.setNote("");
        this.els.button.focus();
      });
      li.append(name, meta, remove);
      return li;
    }));
    this.els.chips.hidden = this.files.length === 0;
  }

  _dropOn(target) {
    const hasFiles = (event) => Boolean(
      event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files"),
    );
    // Capture: CodeMirror would otherwise insert a dropped file's text into the code.
    target.addEventListener("dragover", (event) => {
      if (!hasFiles(event) || this.locked) return;
      event.preventDefault();
      event.stopPropagation();
      event.dataTransfer.dropEffect = "copy";
      target.classList.add("drag-over");
    }, true);
    target.addEventListener("dragleave", () => target.classList.remove("drag-over"), true);
    target.addEventListener("drop", (event) => {
      target.classList.remove("drag-over");
      if (!hasFiles(event) || this.locked) return;
      event.preventDefault();
      event.stopPropagation();
      this.add(event.dataTransfer.files);
    }, true);
  }
}
