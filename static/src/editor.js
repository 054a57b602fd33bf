// The code editor: CodeMirror 6 with Python support, themed by the page's CSS variables so it
// follows the page's theme (light, dark, or the system's) together with the rest of the page.
import {
  EditorView, keymap, lineNumbers, highlightActiveLineGutter, highlightSpecialChars, drawSelection,
  dropCursor, rectangularSelection, crosshairCursor, highlightActiveLine,
} from "@codemirror/view";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  bracketMatching, foldGutter, foldKeymap, indentOnInput, indentUnit, syntaxHighlighting, HighlightStyle,
} from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { python } from "@codemirror/lang-python";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { tags as t } from "@lezer/highlight";

const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.controlKeyword, t.operatorKeyword, t.definitionKeyword, t.moduleKeyword],
    color: "var(--tok-keyword)" },
  { tag: [t.bool, t.null, t.atom, t.self], color: "var(--tok-atom)" },
  { tag: [t.number, t.integer, t.float], color: "var(--tok-number)" },
  { tag: [t.string, t.special(t.string), t.docString], color: "var(--tok-string)" },
  { tag: [t.escape, t.regexp], color: "var(--tok-escape)" },
  { tag: [t.comment, t.lineComment, t.blockComment], color: "var(--tok-comment)", fontStyle: "italic" },
  { tag: [t.function(t.variableName), t.function(t.propertyName), t.function(t.definition(t.variableName))],
    color: "var(--tok-function)" },
  { tag: [t.definition(t.className), t.className, t.typeName], color: "var(--tok-class)" },
  { tag: [t.standard(t.variableName)], color: "var(--tok-builtin)" },
  { tag: [t.meta, t.annotation], color: "var(--tok-meta)" },
  { tag: [t.operator, t.punctuation, t.bracket], color: "var(--tok-punct)" },
  { tag: t.invalid, color: "var(--tok-invalid)" },
]);

// CodeMirror's basicSetup with our own highlighting; the only diagnostics are the ones a run
// gives back (the line an uncaught exception was raised at), set by markException.
const setup = [
  lineNumbers(),
  lintGutter(),
  highlightActiveLineGutter(),
  highlightSpecialChars(),
  history(),
  foldGutter(),
  drawSelection(),
  dropCursor(),
  EditorState.allowMultipleSelections.of(true),
  indentOnInput(),
  bracketMatching(),
  closeBrackets(),
  autocompletion(),
  rectangularSelection(),
  crosshairCursor(),
  highlightActiveLine(),
  highlightSelectionMatches(),
  keymap.of([
    ...closeBracketsKeymap,
    ...defaultKeymap,
    ...searchKeymap,
    ...historyKeymap,
    ...foldKeymap,
    ...completionKeymap,
    indentWithTab,
  ]),
];

const theme = EditorView.theme({
  "&": {
    height: "100%",
    color: "var(--fg)",
    backgroundColor: "var(--editor-bg)",
    fontSize: "var(--code-size)",
  },
  ".cm-scroller": { fontFamily: "var(--mono)", lineHeight: "1.55" },
  ".cm-content": { caretColor: "var(--accent)", padding: "10px 0" },
  "&.cm-focused": { outline: "none" },
  "&.cm-focused .cm-cursor": { borderLeftColor: "var(--accent)", borderLeftWidth: "2px" },
  ".cm-gutters": {
    backgroundColor: "var(--editor-bg)",
    color: "var(--muted)",
    border: "none",
    borderRight: "1px solid var(--border)",
  },
  ".cm-lineNumbers .cm-gutterElement": { padding: "0 10px 0 14px" },
  ".cm-activeLine": { backgroundColor: "var(--active-line)" },
  ".cm-activeLineGutter": { backgroundColor: "var(--active-line)", color: "var(--fg)" },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection":
    { backgroundColor: "var(--selection) !important" },
  ".cm-selectionMatch": { backgroundColor: "var(--selection-match)" },
  "&.cm-focused .cm-matchingBracket": { backgroundColor: "var(--bracket-match)", outline: "none" },
  ".cm-foldPlaceholder": { backgroundColor: "var(--surface-2)", border: "1px solid var(--border)", color: "var(--muted)" },
  ".cm-tooltip": {
    backgroundColor: "var(--surface)",
    color: "var(--fg)",
    border: "1px solid var(--border)",
    borderRadius: "6px",
    boxShadow: "var(--shadow)",
  },
  ".cm-tooltip-autocomplete > ul > li[aria-selected]": { backgroundColor: "var(--accent)", color: "var(--on-accent)" },
  ".cm-panels": { backgroundColor: "var(--surface)", color: "var(--fg)" },
  ".cm-panels.cm-panels-bottom": { borderTop: "1px solid var(--border)" },
  ".cm-searchMatch": { backgroundColor: "var(--search-match)", outline: "1px solid var(--border)" },
  ".cm-lintRange-error": { backgroundImage: "none", textDecoration: "underline wavy var(--error)", textUnderlineOffset: "3px" },
  ".cm-diagnostic": { fontFamily: "var(--mono)", whiteSpace: "pre-wrap" },
  ".cm-textfield, .cm-button": { color: "var(--fg)", backgroundColor: "var(--surface-2)", borderColor: "var(--border)" },
});

/**
 * Create the editor inside `parent`.
 * @param {HTMLElement} parent
 * @param {{doc: string, onChange: (code: string) => void, onRun: () => void, label: string}} options
 */
export function createEditor(parent, { doc, onChange, onRun, label }) {
  const runKeys = Prec.highest(
    keymap.of([
      { key: "Mod-Enter", run: () => { onRun(); return true; }, preventDefault: true },
    ]),
  );
  const access = new Compartment();
  const wrapping = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        runKeys,
        access.of([]),
        wrapping.of([]),
        setup,
        indentUnit.of("    "),
        EditorState.tabSize.of(4),
        python(),
        syntaxHighlighting(highlight),
        theme,
        EditorView.contentAttributes.of({ "aria-label": label, "aria-multiline": "true" }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) onChange(update.state.doc.toString());
        }),
      ],
    }),
  });
  return {
    view,
    getCode: () => view.state.doc.toString(),
    /** Replace the whole text as one undoable change. */
    setCode(code) {
      view.dispatch({
        changes: { from: 0, to: view.state.doc.length, insert: code },
        selection: { anchor: code.length },
        scrollIntoView: true,
      });
    },
    focus: () => view.focus(),
    /** Long lines wrap at the editor's width (on) or scroll sideways (off). */
    setWrap(on) {
      view.dispatch({ effects: wrapping.reconfigure(on ? EditorView.lineWrapping : []) });
    },
    /**
     * Mark the line an uncaught exception was raised at (a run's `exit.exception`, protocol v3)
     * with an error diagnostic carrying its name and value; null clears the marks.
     */
    markException(exception) {
      const n = exception && Number.isInteger(exception.line) ? exception.line : 0;
      const doc = view.state.doc;
      if (n < 1 || n > doc.lines) {
        view.dispatch(setDiagnostics(view.state, []));
        return false;
      }
      const line = doc.line(n);
      const text = line.text;
      const from = line.from + (text.length - text.trimStart().length); // the code, not its indent
      const message = exception.value ? `${exception.name}: ${exception.value}` : exception.name;
      view.dispatch(setDiagnostics(view.state, [
        { from, to: Math.max(from, line.to), severity: "error", source: "run", message },
      ]));
      return true;
    },
    /** A read-only editor (a watcher's view): no edits, no Run key. */
    setReadOnly(on) {
      view.dispatch({
        effects: access.reconfigure(on ? [EditorState.readOnly.of(true), EditorView.editable.of(false)] : []),
      });
    },
  };
}
