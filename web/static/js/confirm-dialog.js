// An in-page confirmation for actions that cannot be taken back (removing someone from a
// session, closing a room with people in it): the page's <dialog id="confirm-dialog">,
// opened modally, answering true only for its confirm button. Escape or Cancel answer false.

import { byId } from "./dom.js";

/** Ask `text` under the heading `title`; resolves true when `confirm` was pressed. */
export function confirmAction({ title, text, confirm = "Confirm" }) {
  const dialog = byId("confirm-dialog");
  const yes = byId("confirm-yes");
  const no = byId("confirm-no");
  byId("confirm-heading").textContent = title;
  byId("confirm-text").textContent = text;
  yes.textContent = confirm;
  return new Promise((resolve) => {
    function done(answer) {
      yes.removeEventListener("click", onYes);
      no.removeEventListener("click", onNo);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) {
        dialog.close();
      }
      resolve(answer);
    }
    const onYes = () => done(true);
    const onNo = () => done(false);
    const onClose = () => done(false);
    yes.addEventListener("click", onYes);
    no.addEventListener("click", onNo);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    no.focus();
  });
}
