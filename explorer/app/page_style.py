"""What every page shares in the browser: the sidebar folded on narrow windows.

Streamlit folds its sidebar by itself only at phone widths (768 px and below); between that and
:data:`FOLD_BELOW_PX` the open sidebar leaves the page a column so narrow that labels break
mid-word. A small page-side script folds it once per browser tab, unless the user has opened or
closed it before (Streamlit keeps that choice in the browser's localStorage; the script's own
click is not a choice and is forgotten at once).
"""

from __future__ import annotations

import streamlit as st

FOLD_BELOW_PX = 1000
"""Windows narrower than this start with the sidebar folded."""

_FOLD_JS = """
export default function () {
  if (window.__explorerSidebarFold) return;
  window.__explorerSidebarFold = true;
  const key = "stSidebarCollapsed-";
  const chosen = () => Object.keys(localStorage).some((k) => k.startsWith(key));
  const fold = () => {
    if (window.innerWidth >= FOLD_BELOW_PX || chosen()) return;
    const button = document.querySelector(
      "[data-testid='stSidebarCollapseButton'] button[aria-expanded='true']");
    if (!button) return;
    button.click();
    Object.keys(localStorage).filter((k) => k.startsWith(key))
      .forEach((k) => localStorage.removeItem(k));
  };
  fold();
  // Streamlit reopens the sidebar whenever the window is resized above 768 px
  let timer = null;
  window.addEventListener("resize", () => { clearTimeout(timer); timer = setTimeout(fold, 150); });
}
""".replace("FOLD_BELOW_PX", str(FOLD_BELOW_PX))


@st.cache_resource
def _fold_component():
    return st.components.v2.component("explorer_sidebar_fold", js=_FOLD_JS)


def fold_sidebar_on_narrow_windows() -> None:
    """Mount the folding script (at the sidebar's end: it shows nothing)."""
    with st.sidebar:
        _fold_component()(key="explorer_sidebar_fold")
