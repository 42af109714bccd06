// The sign-in link's page posts its one-time token by itself; without scripts the button does.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("sign-in");
  if (form) { form.submit(); }
});
