"""The account pages: sign-up, login/logout, password reset, the account page."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select

from flautim.models import User, db, utcnow
from flautim.web import audit, flautim_config
from flautim.web.api.tokens import revoke_all_tokens
from flautim.web.extensions import limiter

from . import bp
from .accounts import (
    EmailTaken,
    create_account,
    delete_account,
    email_in_use,
    is_last_admin,
    projects_blocking_deletion,
    projects_deleted_with,
    set_password,
)
from .emails import send_email_change_confirmation, send_email_changed_notice, send_password_reset
from .forms import (
    DeleteAccountForm,
    EmailChangeForm,
    ForgotPasswordForm,
    LoginForm,
    PasswordChangeForm,
    ProfileForm,
    ResetPasswordForm,
    SignupForm,
)
from .passwords import hash_password, needs_rehash, verify_password
from .redirects import next_or, safe_next
from .signup_policy import count_signup, invitation_for_signup, invitation_only, signup_budget_spent
from .tokens import (
    TokenError,
    email_change_for_token,
    make_email_change_token,
    make_reset_token,
    user_for_reset_token,
)


def _login_limit_per_account() -> str:
    return flautim_config().LOGIN_LIMIT_PER_ACCOUNT


def _login_limit_per_ip() -> str:
    return flautim_config().LOGIN_LIMIT_PER_IP


def _account_key() -> str:
    return "account:" + (request.form.get("email") or "").strip().lower()[:254]


def _failed(response) -> bool:
    # Only failed attempts use up the allowance: a user who logs in and out is never locked.
    return response.status_code not in (302, 303)


def _user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_login_limit_per_ip, key_func=get_remote_address, methods=["POST"], deduct_when=_failed)
def signup():
    if current_user.is_authenticated:
        return redirect(next_or("main.index"))
    invitation = None
    if invitation_only():
        invitation, refusal = invitation_for_signup(safe_next(request.values.get("next")))
        if refusal:
            return render_template("auth/signup_closed.html", message=refusal), 403
    form = SignupForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
        form.email.data = (request.args.get("email") or "").strip().lower()[:254] or None
    error, status = None, 200
    if form.validate_on_submit():
        if invitation is not None and form.email.data != invitation.email.lower():
            form.email.errors.append(
                _("O convite foi enviado para %(email)s: crie a conta com este email.", email=invitation.email)
            )
        elif signup_budget_spent():
            error, status = (
                _(
                    "Já foram criadas muitas contas a partir do seu endereço de rede. Tente de novo "
                    "mais tarde ou fale com o suporte."
                ),
                429,
            )
        else:
            try:
                user = create_account(form.name.data, form.email.data, form.password.data)
            except EmailTaken:
                form.email.errors.append(_("Já existe uma conta com este email. Entre ou redefina a senha."))
            else:
                user.locale = _session_locale()
                user.last_login_at = utcnow()
                db.session.commit()
                count_signup()
                login_user(user)
                flash(_("Bem-vindo(a) ao Flautim, %(name)s!", name=user.name), "success")
                return redirect(safe_next(form.next.data) or url_for("main.index"))
    return render_template(
        "auth/signup.html", form=form, error=error, password_min_length=flautim_config().PASSWORD_MIN_LENGTH
    ), status


def _session_locale() -> str | None:
    locale = session.get("locale")
    return locale if locale in flautim_config().LANGUAGES else None


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit_per_account, key_func=_account_key, methods=["POST"], deduct_when=_failed)
@limiter.limit(_login_limit_per_ip, key_func=get_remote_address, methods=["POST"], deduct_when=_failed)
def login():
    if current_user.is_authenticated:
        return redirect(next_or("main.index"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
    error = None
    if form.validate_on_submit():
        user = _user_by_email(form.email.data)
        if not verify_password(user.password_hash if user else None, form.password.data):
            error = _("Email ou senha incorretos.")
        elif not user.active:
            error = _("Esta conta está desativada. Fale com o suporte se acha que é um engano.")
        else:
            if needs_rehash(user.password_hash):
                user.password_hash = hash_password(form.password.data)
            user.last_login_at = utcnow()
            db.session.commit()
            login_user(user, remember=form.remember.data)
            return redirect(safe_next(form.next.data) or url_for("main.index"))
    return render_template("auth/login.html", form=form, error=error)


@bp.post("/logout")
def logout():
    logout_user()
    flash(_("Você saiu da sua conta."), "info")
    return redirect(url_for("main.index"))


@bp.route("/forgot", methods=["GET", "POST"])
@limiter.limit(_login_limit_per_ip, key_func=get_remote_address, methods=["POST"])
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        user = _user_by_email(form.email.data)
        if user is not None and user.active:
            send_password_reset(user, make_reset_token(user))
        # The same answer either way, so the form does not tell who has an account.
        flash(
            _("Se houver uma conta com este email, enviamos um link para redefinir a senha."),
            "info",
        )
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html", form=form)


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    try:
        user = user_for_reset_token(token)
    except TokenError as exc:
        message = (
            _("Este link de redefinição expirou. Peça um novo.")
            if exc.expired
            else _("Este link de redefinição é inválido ou já foi usado. Peça um novo.")
        )
        return render_template("auth/token_problem.html", message=message), 400
    form = ResetPasswordForm(user=user)
    if form.validate_on_submit():
        set_password(user, form.password.data)
        revoked = _revoke_api_tokens(user, form.revoke_tokens.data, "password_reset")
        db.session.commit()
        logout_user()
        flash(_("Senha alterada. Entre com a nova senha."), "success")
        _flash_revoked(revoked)
        return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form, user=user)


def _revoke_api_tokens(user: User, wanted: bool, reason: str) -> int:
    """With a new password, the API tokens go too unless the user unticked the box."""
    if not wanted:
        return 0
    revoked = revoke_all_tokens(user)
    if revoked:
        audit.record("api_token.revoke_all", target=f"user:{user.id}", count=revoked, reason=reason)
    return revoked


def _flash_revoked(revoked: int) -> None:
    if revoked:
        flash(
            ngettext(
                "%(num)d token de acesso à API foi revogado.",
                "%(num)d tokens de acesso à API foram revogados.",
                revoked,
            ),
            "info",
        )


# --- the account page -------------------------------------------------------------------

def _account_forms(**given):
    forms = {
        "profile_form": ProfileForm(prefix="profile", obj=current_user, formdata=None),
        "email_form": EmailChangeForm(prefix="email", formdata=None),
        "password_form": PasswordChangeForm(prefix="password", user=current_user, formdata=None),
        "delete_form": DeleteAccountForm(prefix="delete", formdata=None),
    }
    if not forms["profile_form"].locale.data:
        forms["profile_form"].locale.data = _session_locale() or current_app.config["BABEL_DEFAULT_LOCALE"]
    forms.update(given)
    return forms


def _render_account(status: int = 200, **given):
    return (
        render_template(
            "auth/account.html",
            blocking_projects=projects_blocking_deletion(current_user),
            sole_projects=projects_deleted_with(current_user),
            last_admin=is_last_admin(current_user),
            **_account_forms(**given),
        ),
        status,
    )


@bp.get("/account")
@login_required
def account():
    return _render_account()


@bp.post("/account/profile")
@login_required
def update_profile():
    form = ProfileForm(prefix="profile")
    if not form.validate_on_submit():
        return _render_account(400, profile_form=form)
    current_user.name = form.name.data
    current_user.locale = form.locale.data
    current_user.notify_run_end = form.notify_run_end.data
    db.session.commit()
    session["locale"] = form.locale.data
    flash(_("Perfil atualizado."), "success")
    return redirect(url_for("auth.account"))


@bp.post("/account/email")
@login_required
def change_email():
    form = EmailChangeForm(prefix="email")
    if form.validate_on_submit():
        if not verify_password(current_user.password_hash, form.current_password.data):
            form.current_password.errors.append(_("Senha incorreta."))
        elif form.new_email.data == current_user.email:
            form.new_email.errors.append(_("Este já é o email da sua conta."))
        elif email_in_use(form.new_email.data, except_user_id=current_user.id):
            form.new_email.errors.append(_("Já existe uma conta com este email."))
        else:
            current_user.pending_email = form.new_email.data
            db.session.commit()
            token = make_email_change_token(current_user, form.new_email.data)
            send_email_change_confirmation(current_user, form.new_email.data, token)
            flash(
                _("Enviamos um link de confirmação para %(email)s. O email só muda depois da confirmação.",
                  email=form.new_email.data),
                "info",
            )
            return redirect(url_for("auth.account"))
    return _render_account(400, email_form=form)


@bp.route("/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email(token: str):
    try:
        user, new_email = email_change_for_token(token)
    except TokenError as exc:
        message = (
            _("Este link de confirmação expirou. Peça a troca de email de novo.")
            if exc.expired
            else _("Este link de confirmação é inválido ou já foi usado.")
        )
        return render_template("auth/token_problem.html", message=message), 400
    if request.method == "POST":
        if email_in_use(new_email, except_user_id=user.id):
            return render_template(
                "auth/token_problem.html", message=_("Outra conta já usa este email.")
            ), 409
        old_email = user.email
        user.email, user.pending_email = new_email, None
        db.session.commit()
        send_email_changed_notice(user, old_email)
        flash(_("Email alterado para %(email)s.", email=new_email), "success")
        return redirect(url_for("auth.account") if current_user.is_authenticated else url_for("auth.login"))
    return render_template("auth/confirm_email.html", user=user, new_email=new_email)


@bp.post("/account/password")
@login_required
def change_password():
    form = PasswordChangeForm(prefix="password", user=current_user)
    if form.validate_on_submit():
        if not verify_password(current_user.password_hash, form.current_password.data):
            form.current_password.errors.append(_("Senha incorreta."))
        else:
            user = current_user._get_current_object()
            set_password(user, form.password.data)
            revoked = _revoke_api_tokens(user, form.revoke_tokens.data, "password_change")
            db.session.commit()
            # The epoch moved: re-login this session so only the *other* sessions end.
            login_user(user, remember="remember_token" in request.cookies)
            flash(_("Senha alterada. As outras sessões abertas foram encerradas."), "success")
            _flash_revoked(revoked)
            return redirect(url_for("auth.account"))
    return _render_account(400, password_form=form)


@bp.post("/account/delete")
@login_required
def delete():
    form = DeleteAccountForm(prefix="delete")
    if form.validate_on_submit():
        user = current_user._get_current_object()
        if not verify_password(user.password_hash, form.current_password.data):
            form.current_password.errors.append(_("Senha incorreta."))
        elif projects_blocking_deletion(user):
            form.current_password.errors.append(
                _("Você é dono(a) de projetos com outros membros. Transfira a propriedade antes de apagar a conta.")
            )
        elif is_last_admin(user):
            form.current_password.errors.append(
                _("Você é o último administrador do site. Nomeie outro antes de apagar a conta.")
            )
        else:
            logout_user()
            delete_account(user)
            flash(_("Sua conta foi apagada."), "info")
            return redirect(url_for("main.index"))
    return _render_account(400, delete_form=form)
