// Runs between require.js and the widget manager (see nb_ipywidgets_js in _config.yml).

// The manager's fonts are found beside its module's URI, which require.js resolves against
// the page's folder; map the package to the site's /widgets/ folder (every page is one
// folder below the site root).
window.requirejs.config({
  paths: { "@jupyter-widgets/html-manager": "../widgets/@jupyter-widgets/html-manager" },
});

// The manager typesets LaTeX in widget labels through MathJax 2's API
// (MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])); the site runs MathJax 3.
// Translate that one call. Deferred scripts (MathJax among them) have run by DOMContentLoaded.
document.addEventListener("DOMContentLoaded", () => {
  const mathjax = window.MathJax;
  if (!mathjax || mathjax.Hub || !mathjax.startup) return;
  mathjax.Hub = {
    Queue: (...jobs) => {
      for (const job of jobs) {
        if (Array.isArray(job) && job[0] === "Typeset") {
          mathjax.startup.promise.then(() => mathjax.typesetPromise([job[2]]));
        }
      }
    },
  };
});
