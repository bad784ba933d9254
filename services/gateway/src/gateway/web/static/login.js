/* /login: posts the OAuth2 password form; the answer sets the session cookie. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = Jauge.$("#login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    Jauge.clearFlash();
    const body = new URLSearchParams(new FormData(form));
    if (!body.get("username") || !body.get("password")) {
      Jauge.flash("Saisissez votre identifiant et votre mot de passe.");
      return;
    }
    await Jauge.busy(form.querySelector("button"), async () => {
      try {
        await Jauge.api("POST", "/api/auth/token", body, { noRedirect: true });
        location.assign(form.dataset.next || "/");
      } catch (err) {
        Jauge.showError(err, form);
      }
    });
  });
});
