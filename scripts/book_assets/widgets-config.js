// Loaded after RequireJS and before the widgets' HTML manager (scripts/build_book.py, OFFLINE).
// 1. The manager names its modules "@jupyter-widgets/html-manager/dist/..." and looks for them, and
//    for its fonts, relative to RequireJS's base: make that this folder, where the book keeps them.
require.config({baseUrl: new URL(".", document.currentScript.src).href});
// 2. The widgets typeset their labels with MathJax 2's API (MathJax.Hub.Queue); the book loads
//    MathJax 3, which typesets with MathJax.typesetPromise.
document.addEventListener("DOMContentLoaded", () => {
  if (window.MathJax && !window.MathJax.Hub) {
    window.MathJax.Hub = {Queue: (task) => window.MathJax.typesetPromise && window.MathJax.typesetPromise([task[2]])};
  }
});
